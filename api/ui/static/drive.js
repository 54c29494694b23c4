// The drive: the caller's spaces, a folder's listing, uploads (drop files on the page or
// choose them), downloads, new folders and deletes.
import { $, api, clear, drivePath, el, formatSize, formatTime, notify, showError } from "./common.js";
import { spaces } from "./drive_walk.js";

let folder = "";

function crumbs() {
  const parts = folder.split("/");
  clear(
    $("#crumbs"),
    parts.map((name, i) => {
      const path = parts.slice(0, i + 1).join("/");
      const last = i === parts.length - 1;
      return [
        i ? " / " : "",
        last
          ? el("span", { "aria-current": "location" }, name)
          : el("a", { href: `#${encodeURIComponent(path)}`, onclick: (e) => go(e, path) }, name),
      ];
    }),
  );
}

function go(event, path) {
  event?.preventDefault();
  open(path).catch(showError);
}

async function download(entry) {
  const response = await api(drivePath(entry.path), { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: entry.name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function remove(entry) {
  const what = entry.type === "folder" ? `the folder ${entry.name} and everything in it` : entry.name;
  if (!window.confirm(`Delete ${what}?`)) return;
  try {
    await api(drivePath(entry.path), { method: "DELETE" });
    notify(`Deleted ${entry.name}.`);
    await open(folder);
  } catch (error) {
    showError(error);
  }
}

function row(entry) {
  const isFolder = entry.type === "folder";
  return el(
    "tr",
    {},
    el(
      "td",
      {},
      isFolder
        ? el("a", { href: `#${encodeURIComponent(entry.path)}`, onclick: (e) => go(e, entry.path) }, `${entry.name}/`)
        : el("span", { class: "mono" }, entry.name),
    ),
    el("td", { class: "nowrap" }, isFolder ? "–" : formatSize(entry.size)),
    el("td", {}, formatTime(entry.modified)),
    el(
      "td",
      {},
      el(
        "div",
        { class: "row-actions" },
        isFolder
          ? null
          : el("button", { type: "button", class: "secondary", "aria-label": `Download ${entry.name}`, onclick: () => download(entry).catch(showError) }, "Download"),
        el("button", { type: "button", class: "danger", "aria-label": `Delete ${entry.name}`, onclick: () => remove(entry) }, "Delete"),
      ),
    ),
  );
}

async function open(path) {
  folder = path;
  history.replaceState(null, "", `#${encodeURIComponent(path)}`);
  crumbs();
  let listing;
  try {
    listing = await api(drivePath(path));
  } catch (error) {
    if (error.status === 404 && path.includes("/")) {
      // A folder not made yet (or gone): show the space instead.
      return open(path.split("/")[0]);
    }
    throw error;
  }
  const entries = listing.entries || [];
  entries.sort((a, b) => (a.type === b.type ? a.name.localeCompare(b.name) : a.type === "folder" ? -1 : 1));
  clear($("#listing").tBodies[0], entries.map(row));
  $("#listing-empty").hidden = entries.length > 0;
  $("#listing").hidden = entries.length === 0;
}

async function upload(files) {
  let done = 0;
  for (const file of files) {
    try {
      await api(drivePath(`${folder}/${file.name}`), { method: "PUT", body: file });
      done++;
    } catch (error) {
      showError(new Error(`${file.name}: ${error.message}`));
      return open(folder);
    }
  }
  notify(`Uploaded ${done} file${done === 1 ? "" : "s"}.`);
  await open(folder);
}

const zone = $("#dropzone");
for (const name of ["dragenter", "dragover"]) {
  zone.addEventListener(name, (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
}
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("over");
  upload([...event.dataTransfer.files]).catch(showError);
});
$("#upload-input").addEventListener("change", (event) => {
  upload([...event.target.files]).catch(showError);
  event.target.value = "";
});
$("#new-folder-go").addEventListener("click", async () => {
  const name = $("#new-folder").value.trim();
  if (!name) return showError(new Error("Give the new folder a name."));
  try {
    const parent = "/api/v2/files/" + folder.split("/").map(encodeURIComponent).join("/");
    await api(parent, { method: "POST", body: { name, node_type: "folder" } });
    $("#new-folder").value = "";
    await open(`${folder}/${name}`);
  } catch (error) {
    showError(error);
  }
});
$("#space").addEventListener("change", (event) => open(event.target.value).catch(showError));

async function start() {
  const names = await spaces({ everyone: true });
  clear($("#space"), names.map((n) => el("option", { value: n }, n)));
  const wanted = decodeURIComponent(location.hash.slice(1));
  const space = names.find((n) => wanted === n || wanted.startsWith(`${n}/`));
  $("#space").value = space || names[0];
  await open(space ? wanted : names[0]);
}

start().catch(showError);
