// The jobs table: jobs/list with the form's filters, newest first, a page at a time (each
// "Older" follows the answer's next_page, a keyset cursor), refreshed every 2 seconds (only
// redrawn when something changed, so focus stays where it is).
import { $, api, clear, el, formatTime, me, poll, progressBar, query, stateBadge } from "./common.js";

const PAGE = 25;
const form = $("#filters");
const body = $("#jobs-body");
// The URL of each page shown so far: the first page, then each next_page followed.
let pages = [];
let nextPage = null;
let shown = "";

function seconds(value) {
  return value ? String(Date.parse(value) / 1000) : "";
}

function filters() {
  const data = new FormData(form);
  return {
    job_id: data.get("job_id")?.trim(),
    state: data.get("state"),
    tags: data.get("tags")?.trim(),
    review_state: data.get("review_state"),
    user: me.admin ? data.get("user")?.trim() : "",
    from_timestamp: seconds(data.get("from")),
    to_timestamp: seconds(data.get("to")),
  };
}

function row(job) {
  const stopped = job.state === "STOPPED_AT_CHECKPOINT";
  return el(
    "tr",
    { "data-job-id": job.job_id },
    el("td", {}, el("a", { href: `/jobs/${encodeURIComponent(job.job_id)}`, class: "mono" }, job.job_id)),
    el("td", {}, stateBadge(job.state)),
    el("td", {}, progressBar(job.curProgress, `Progress of ${job.job_id}`)),
    el("td", {}, (job.tags || []).map((tag) => el("span", { class: "tag" }, tag))),
    el("td", {}, job.username),
    el("td", {}, formatTime(job.start_timestamp)),
    el(
      "td",
      {},
      stopped
        ? el("a", { href: `/review/${encodeURIComponent(job.job_id)}` }, "Review")
        : job.review_state && job.review_state !== "NONE"
          ? job.review_state
          : "",
    ),
  );
}

function firstPage() {
  return `/api/v1/jobs/list?${query({ ...filters(), limit: PAGE })}`;
}

async function refresh() {
  if (!pages.length) pages = [firstPage()];
  const answer = await api(pages[pages.length - 1]);
  nextPage = answer.next_page;
  const first = (pages.length - 1) * PAGE;
  $("#prev").disabled = pages.length === 1;
  $("#next").disabled = !nextPage;
  $("#page-label").textContent = answer.jobs.length
    ? `${first + 1}–${first + answer.jobs.length}`
    : "";
  $("#jobs-empty").hidden = answer.jobs.length > 0;
  $("#jobs-table").hidden = answer.jobs.length === 0;
  const fingerprint = JSON.stringify(answer.jobs);
  if (fingerprint === shown) return;
  shown = fingerprint;
  clear(body, answer.jobs.map(row));
  // When the first page of jobs is on screen (bench/ui_page_load.py reads it).
  if (!performance.getEntriesByName("jobs-shown").length) performance.mark("jobs-shown");
}

function restart() {
  pages = [];
  shown = "";
  refresh();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  restart();
});
form.addEventListener("reset", () => setTimeout(restart));
$("#prev").addEventListener("click", () => {
  pages.pop();
  refresh();
});
$("#next").addEventListener("click", () => {
  if (!nextPage) return;
  pages.push(nextPage);
  refresh();
});
poll(refresh, 2000);
