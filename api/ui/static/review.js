// Review one job: each record stopped at a checkpoint with its text beside its fields and the
// failed rules' messages; Save corrects a record, then Retry sends the corrected records on.
import { $, ApiError, api, clear, el, notify, showError, stateBadge } from "./common.js";

const jobId = $("#review").dataset.jobId;

// A field's value as typed: numbers, true/false, null and JSON stay what they are; else text.
function parsed(text, original) {
  if (typeof original === "string") return text;
  try {
    return JSON.parse(text);
  } catch (_) {
    return text;
  }
}

function shownValue(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function recordCard(record, index) {
  const id = `r${index}`;
  const corrected = record.corrected_fields || {};
  const names = [...new Set([...Object.keys(record.fields), ...Object.keys(corrected)])];
  const inputs = names.map((name) => {
    const inputId = `${id}-${name}`;
    const seen = record.fields[name];
    // A saved correction is what the retry will check: show it, and what the checkpoint saw.
    const value = name in corrected ? corrected[name] : seen;
    return el(
      "div",
      { class: "field" },
      el("label", { for: inputId }, name),
      el("input", { id: inputId, name, value: shownValue(value), "data-original": JSON.stringify(value ?? null) }),
      name in corrected ? el("span", { class: "muted" }, `corrected; the checkpoint saw ${shownValue(seen) || "nothing"}`) : null,
    );
  });
  const form = el(
    "form",
    { class: "record-fields stack", "aria-label": `Fields of ${record.file_name} record ${record.record_index}` },
    inputs,
    el("div", { class: "controls" }, el("button", { type: "submit" }, "Save")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = {};
    for (const input of form.querySelectorAll("input")) {
      const original = JSON.parse(input.dataset.original);
      if (input.value !== shownValue(original)) fields[input.name] = parsed(input.value, original);
    }
    try {
      await api("/api/v1/review/correct", {
        method: "POST",
        body: { job_id: jobId, file_index: record.file_index, record_index: record.record_index, fields },
      });
      notify(`Saved ${record.file_name} record ${record.record_index}.`);
      await refresh();
    } catch (error) {
      showError(error);
    }
  });
  return el(
    "article",
    { class: "record card", "aria-labelledby": `${id}-title` },
    el(
      "h2",
      { id: `${id}-title` },
      `${record.file_name} · record ${record.record_index} `,
      el("span", { class: `badge ${record.reviewed ? "state-complete" : "state-stopped_at_checkpoint"}` }, record.reviewed ? `reviewed by ${record.reviewer}` : "awaiting review"),
    ),
    el("ul", { class: "failed-rules" }, record.checkpoint_failed.map((m) => el("li", {}, `${record.checkpoint_step}: ${m}`))),
    el(
      "div",
      { class: "record-body" },
      el("div", { class: "record-text" }, el("h3", {}, "Text"), el("pre", { tabindex: "0" }, record.text || "(no text)")),
      el("div", {}, el("h3", {}, "Fields"), form),
    ),
  );
}

async function refresh() {
  let answer;
  try {
    answer = await api(`/api/v1/review/records?job_id=${encodeURIComponent(jobId)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      clear($("#review"), el("p", { class: "empty" }, error.message));
      return;
    }
    throw error;
  }
  const status = await api(`/api/v1/jobs/status?job_id=${encodeURIComponent(jobId)}`);
  const current = JSON.parse(status.cur_status);
  clear($("#rv-state"), stateBadge(current.status));
  $("#rv-reviewer").textContent = answer.reviewer || "–";
  $("#rv-review-state").textContent = answer.review_state || "NONE";
  const counts = answer.flow_review_metrics || {};
  $("#rv-counts").textContent = `${counts.reviewed ?? 0} / ${counts.pending ?? 0}`;
  const stopped = current.status === "STOPPED_AT_CHECKPOINT";
  $("#rv-retry").disabled = !stopped;
  clear($("#records"), answer.records.map(recordCard));
  $("#records-empty").hidden = answer.records.length > 0;
  if (!answer.records.length && !stopped) {
    $("#records-empty").textContent = `This job is ${current.status.toLowerCase().replaceAll("_", " ")}: nothing waits for review.`;
  }
}

$("#assign-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("/api/v1/review/assign", { method: "POST", body: { job_id: jobId, reviewer: $("#assign-input").value.trim() } });
    notify("Reviewer assigned.");
    await refresh();
  } catch (error) {
    showError(error);
  }
});
$("#rv-complete").addEventListener("click", async () => {
  try {
    await api("/api/v1/review/complete", { method: "POST", body: { job_id: jobId, state: "COMPLETED" } });
    notify("Review marked complete.");
    await refresh();
  } catch (error) {
    showError(error);
  }
});
$("#rv-retry").addEventListener("click", async () => {
  try {
    await api(`/api/v1/jobs/retry?job_id=${encodeURIComponent(jobId)}&type=checkpoint_failure`);
    notify("Retry started: the corrected records are checked again.");
    window.location.assign(`/jobs/${encodeURIComponent(jobId)}`);
  } catch (error) {
    showError(error);
  }
});

refresh().catch(showError);
