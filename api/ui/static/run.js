// Run a compiled binary on a drive folder, or compile a project's flow file; both are jobs,
// and the page goes on to the new job.
import { $, api, clear, el, notify, showError } from "./common.js";
import { spaces, walk } from "./drive_walk.js";

function options(select, values, empty) {
  clear(
    select,
    values.length
      ? [el("option", { value: "" }, "Choose…"), values.map((v) => el("option", { value: v }, v))]
      : el("option", { value: "" }, empty),
  );
}

async function load() {
  const { folders, files } = await walk(await spaces());
  options($("#run-binary"), files.filter((f) => f.endsWith(".ibflowbin")), "No binaries yet: compile a project below");
  options($("#run-input"), folders, "No folders");
  options($("#compile-flow"), files.filter((f) => f.endsWith(".ibflow")), "No flow files: upload a project on the Drive page");
}

$("#run-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const binary = $("#run-binary").value;
  const input = $("#run-input").value;
  if (!binary || !input) return showError(new Error("Choose a binary and an input folder."));
  const tags = $("#run-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  const priority = Number($("#run-priority").value || 0);
  try {
    const answer = await api("/api/v1/flow/run_binary_async", {
      method: "POST",
      body: { binary_path: binary, input_dir: input, settings: { tags, priority, output_has_run_id: true } },
    });
    window.location.assign(`/jobs/${encodeURIComponent(answer.data.job_id)}`);
  } catch (error) {
    showError(error);
  }
});

$("#compile-flow").closest("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const flow = $("#compile-flow").value;
  if (!flow) return showError(new Error("Choose a flow file."));
  const parts = flow.split("/");
  const folder = parts.slice(0, -1);
  // The project is the flow file's folder, or its parent when that folder is flows/.
  const root = folder[folder.length - 1] === "flows" ? folder.slice(0, -1) : folder;
  const flowFile = parts.slice(root.length).join("/");
  try {
    const answer = await api("/api/v1/flow_binary/compile", {
      method: "POST",
      body: { binary_type: "Single Flow", flow_project_root: root.join("/"), settings: { flow_file: flowFile } },
    });
    notify("Compiling…");
    window.location.assign(`/jobs/${encodeURIComponent(answer.job_id)}`);
  } catch (error) {
    showError(error);
  }
});

load().catch(showError);
