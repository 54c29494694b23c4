// One job: its state and facts, the controls its state and the caller allow, tags, the grid
// of files by steps, results (and a CSV of them), the live log, deliveries.
import {
  $,
  ApiError,
  api,
  clear,
  el,
  formatIso,
  formatTime,
  notify,
  poll,
  query,
  showError,
  stateBadge,
} from "./common.js";

const jobId = $("#job").dataset.jobId;
const q = (extra = {}) => query({ job_id: jobId, ...extra });
const GRID_PAGE = 50;
const FINAL = ["COMPLETE", "FAILED", "CANCELLED", "STOPPED_AT_CHECKPOINT", "PAUSED"];
const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
let state = null;
let controls = false;
let gridOffset = 0;
let logOffset = 0;
let logLines = [];
let resultsShownFor = null;
let tagsEdited = false;

// Which buttons each state allows (shared/states.py's transition table, as the seed names it).
const ALLOWED = {
  QUEUED: ["pause", "cancel"],
  RUNNING: ["pause", "cancel"],
  PAUSED: ["resume", "cancel"],
  STOPPED_AT_CHECKPOINT: ["retry", "cancel", "review"],
  FAILED: ["retry"],
  COMPLETE: ["retry"],
  CANCELLED: [],
};

function gone(error) {
  clear($("#job"), el("p", { class: "empty" }, error.message || "No such job."));
}

async function refreshStatus() {
  const status = await api(`/api/v1/jobs/status?${q()}`);
  const current = JSON.parse(status.cur_status);
  const queued = status.is_waiting_for_resources;
  const previous = state;
  state = queued ? "QUEUED" : current.status;
  $("#job-finished").textContent = formatTime(status.finish_timestamp);
  // Started and finished times change with the state: read the job's facts again.
  if (previous !== null && previous !== state) refreshFacts().catch(showError);
  clear($("#job-state"), stateBadge(current.status, queued));
  const fraction = current.curProgress || 0;
  $("#job-progress").value = fraction;
  $("#job-progress-text").textContent = `${Math.round(fraction * 100)}%`;
  $("#job-message").textContent = current.curMsg || status.msg || "–";
  for (const action of ["pause", "resume", "retry", "cancel", "review"]) {
    // Only flow runs can be retried (a compile is compiled again instead).
    const allowed =
      (ALLOWED[state] || []).includes(action) && (action !== "retry" || status.binary_mode);
    const button = $(`#act-${action}`);
    button.hidden = !allowed || (action !== "review" && !controls);
  }
  $("#act-review").href = `/review/${encodeURIComponent(jobId)}`;
  $("#tags-save").disabled = !controls;
  if (!status.binary_mode) {
    if (current.binary_path) $("#job-binary").textContent = current.binary_path;
    $("#results-empty").textContent = current.binary_path
      ? `A compile job has no results: it writes the binary ${current.binary_path}.`
      : "This job has no results.";
  }
  // Only a flow run has results (a compile's output is its binary), written when it ends (a
  // paused job is DONE to the seed's polling loop, but has none yet).
  const ended = ["COMPLETE", "FAILED", "STOPPED_AT_CHECKPOINT"].includes(state);
  if (status.binary_mode && ended && resultsShownFor !== state) {
    resultsShownFor = state;
    const folder = status.results?.[0]?.output_folder;
    if (folder) refreshResults(folder).catch(showError);
  }
  return status;
}

async function refreshFacts() {
  const job = await api(`/api/v2/jobs/${encodeURIComponent(jobId)}`);
  $("#job-owner").textContent = job.owner?.username || "–";
  $("#job-created").textContent = formatIso(job.createdTimestamp);
  $("#job-started").textContent = formatIso(job.startedTimestamp);
  if (!tagsEdited) $("#tags-input").value = (job.tags || []).join(", ");
}

async function refreshSummaryFolders() {
  const listed = await api(`/api/v1/jobs/list?${query({ job_ids: jobId, from_timestamp: 0 })}`);
  const job = listed.jobs[0];
  if (!job) return;
  $("#job-binary").textContent = job.flow_path || "–";
  $("#job-input").textContent = job.input_folder || "–";
  $("#job-output").textContent = job.output_folder || "–";
}

function cell(step) {
  const errors = step.errors || [];
  return el(
    "td",
    { class: `cell ${step.state}`, title: errors.join("\n") || step.state },
    el("span", { class: "cell-state" }, step.state.replaceAll("_", " ")),
    errors.length ? el("span", { class: "cell-error" }, errors.join("; ")) : null,
  );
}

async function refreshGrid() {
  const answer = await api(`/api/v1/jobs/files?${q({ offset: gridOffset, limit: GRID_PAGE })}`);
  controls = answer.caller.controls;
  const grid = $("#grid");
  $("#grid-empty").hidden = answer.total_files > 0;
  grid.hidden = answer.total_files === 0;
  $("#grid-legend").hidden = answer.total_files === 0;
  clear(
    grid.tHead,
    el("tr", {}, el("th", { scope: "col" }, "File"), answer.steps.map((s) => el("th", { scope: "col" }, s))),
  );
  clear(
    grid.tBodies[0],
    answer.files.map((file) =>
      el("tr", {}, el("th", { scope: "row", class: "mono" }, file.file_name), file.steps.map(cell)),
    ),
  );
  $("#grid-prev").hidden = gridOffset === 0;
  $("#grid-next").hidden = gridOffset + answer.files.length >= answer.total_files;
}

async function refreshResults(folder) {
  const answer = await api("/api/v1/flow_binary/results", {
    method: "POST",
    body: { ibresults_path: folder },
  });
  const records = answer.records || [];
  const keys = [...new Set(records.flatMap((r) => (r.results || []).map((p) => p.key)))];
  const columns = ["file_name", "record_index", ...keys, "error"];
  const rows = records.map((r) => {
    const values = Object.fromEntries((r.results || []).map((p) => [p.key, p.value]));
    return [r.file_name, r.record_index, ...keys.map((k) => values[k]), r.error || ""];
  });
  const table = $("#results");
  table.hidden = records.length === 0;
  $("#results-empty").hidden = records.length > 0;
  $("#results-empty").textContent = "This run has no result records.";
  clear(table.tHead, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c))));
  clear(
    table.tBodies[0],
    rows.map((values) =>
      el("tr", {}, values.map((v) => el("td", {}, v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v)))),
    ),
  );
  const csv = [columns, ...rows]
    .map((values) =>
      values
        .map((v) => {
          const text = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
          return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
        })
        .join(","),
    )
    .join("\n");
  const link = $("#results-csv");
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([csv + "\n"], { type: "text/csv" }));
  link.download = `${jobId}-results.csv`;
  link.hidden = records.length === 0;
}

function renderLog() {
  const level = $("#log-level").value;
  const minimum = level ? LEVELS.indexOf(level) : -1;
  const shown = logLines.filter((line) => LEVELS.indexOf(line.level) >= minimum);
  const box = $("#log");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  box.textContent = shown.length
    ? shown.map((l) => `${l.ts}  ${l.level.padEnd(7)} ${l.log}`).join("\n")
    : "No log lines yet.";
  if (atBottom) box.scrollTop = box.scrollHeight;
}

async function refreshLog() {
  for (let pages = 0; pages < 10; pages++) {
    const answer = await api(`/api/v1/jobs/get_logs?${q({ offset: logOffset, limit: 1000 })}`);
    logLines = logLines.concat(answer.logs);
    logOffset = answer.next_offset;
    if (answer.logs.length < 1000) break;
  }
  renderLog();
}

async function refreshDeliveries() {
  const answer = await api(`/api/v1/deliveries?${q()}`);
  const rows = answer.deliveries.map((d) =>
    el(
      "tr",
      {},
      el("td", {}, d.channel),
      el("td", { class: "mono" }, d.target),
      el("td", {}, d.status, d.last_error ? el("div", { class: "muted" }, d.last_error) : null),
      el(
        "td",
        {},
        `${d.attempts} of ${d.max_attempts}`,
        el(
          "ul",
          { class: "attempts" },
          d.attempt_log.map((a) =>
            el("li", {}, `#${a.number} ${a.outcome} ${a.status_code ?? ""} ${formatTime(a.started_at)}`),
          ),
        ),
      ),
      el(
        "td",
        {},
        controls
          ? el("button", { type: "button", class: "secondary", onclick: () => redeliver(d.id) }, "Redeliver")
          : null,
      ),
    ),
  );
  $("#deliveries-empty").hidden = rows.length > 0;
  $("#deliveries").hidden = rows.length === 0;
  clear($("#deliveries").tBodies[0], rows);
}

async function redeliver(id) {
  try {
    await api(`/api/v1/deliveries/${id}/redeliver`, { method: "POST" });
    notify("Delivery sent again.");
    await refreshDeliveries();
  } catch (error) {
    showError(error);
  }
}

async function act(action, extra = {}) {
  try {
    await api(`/api/v1/jobs/${action}?${q(extra)}`);
    notify(`${action[0].toUpperCase()}${action.slice(1)} requested.`);
    await refreshStatus();
    await refreshGrid();
  } catch (error) {
    showError(error);
  }
}

$("#act-pause").addEventListener("click", () => act("pause"));
$("#act-resume").addEventListener("click", () => act("resume"));
$("#act-retry").addEventListener("click", () => act("retry"));
$("#act-cancel").addEventListener("click", () => $("#confirm-cancel").showModal());
$("#confirm-cancel").addEventListener("close", () => {
  if ($("#confirm-cancel").returnValue === "yes") act("cancel");
});
$("#log-level").addEventListener("change", renderLog);
$("#tags-input").addEventListener("input", () => {
  tagsEdited = true;
});
$("#tags-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const names = $("#tags-input")
    .value.split(",")
    .map((t) => t.trim())
    .filter(Boolean);
  try {
    const answer = await api("/api/v1/jobs/tags", { method: "POST", body: { job_id: jobId, names } });
    tagsEdited = false;
    $("#tags-input").value = answer.updated_tags.join(", ");
    notify("Tags saved.");
  } catch (error) {
    showError(error);
  }
});
$("#grid-next").addEventListener("click", () => {
  gridOffset += GRID_PAGE;
  refreshGrid().catch(showError);
});
$("#grid-prev").addEventListener("click", () => {
  gridOffset = Math.max(0, gridOffset - GRID_PAGE);
  refreshGrid().catch(showError);
});

async function start() {
  try {
    await refreshGrid();
    await refreshStatus();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return gone(error);
    throw error;
  }
  refreshFacts().catch(showError);
  refreshSummaryFolders().catch(showError);
  refreshDeliveries().catch(showError);
  let settledAt = null;
  poll(async () => {
    const seen = state;
    await refreshStatus();
    // A job that stays where it stopped needs one more look at its files and log (the last
    // lines come with its ending), then only its state (a retry may start it again) and its
    // deliveries (retried by beat).
    if (FINAL.includes(state) && settledAt === state && seen === state) {
      await refreshDeliveries();
      return;
    }
    settledAt = FINAL.includes(state) ? state : null;
    await refreshGrid();
    await refreshLog();
    if (FINAL.includes(state)) await refreshDeliveries();
  }, 1500);
}

start().catch(showError);
