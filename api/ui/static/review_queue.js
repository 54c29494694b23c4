// The review queue: jobs stopped at a checkpoint (any time), filtered by reviewer and review
// state, refreshed every 2 seconds.
import { $, api, clear, el, formatTime, poll, query } from "./common.js";

let shown = "";

async function refresh() {
  const wanted = {
    state: "STOPPED_AT_CHECKPOINT",
    from_timestamp: 0,
    limit: 100,
    reviewer: $("#r-reviewer").value.trim(),
    review_state: $("#r-state").value,
  };
  const answer = await api(`/api/v1/jobs/list?${query(wanted)}`);
  $("#queue-empty").hidden = answer.jobs.length > 0;
  $("#queue").hidden = answer.jobs.length === 0;
  const fingerprint = JSON.stringify(answer.jobs);
  if (fingerprint === shown) return;
  shown = fingerprint;
  clear(
    $("#queue").tBodies[0],
    answer.jobs.map((job) =>
      el(
        "tr",
        {},
        el("td", {}, el("a", { href: `/review/${encodeURIComponent(job.job_id)}`, class: "mono" }, job.job_id)),
        el("td", {}, String(job.flow_review_metrics?.pending ?? job.run_summary?.numCheckpointFailed ?? "")),
        el("td", {}, job.reviewer || "–"),
        el("td", {}, job.review_state || "NONE"),
        el("td", {}, formatTime(job.start_timestamp)),
      ),
    ),
  );
}

$("#review-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  shown = "";
  refresh();
});
poll(refresh, 2000);
