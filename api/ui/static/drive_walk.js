// The spaces the caller sees (their own, their teams', for an admin everyone's) and a bounded
// walk through them, for the pickers of the Run page.
import { api, drivePath, me } from "./common.js";

// The caller's own space, then their teams'; with ``everyone``, an admin's list goes on with
// every user's space (admins read the whole drive).
export async function spaces({ everyone = false } = {}) {
  const found = [me.username];
  const add = (name) => {
    if (!found.includes(name)) found.push(name);
  };
  try {
    const teams = await api("/api/v2/teams");
    for (const team of teams.values || []) add(team.name);
    if (everyone && me.admin) {
      const users = await api("/api/v2/users");
      for (const user of users.values || []) add(user.username);
    }
  } catch (_) {
    // a key without the permission to list teams or users still sees its own space
  }
  return found;
}

// Every folder and file under ``roots``, breadth first, at most ``maxFolders`` folders deep
// into the tree; run outputs' per-step folders are not entered.
export async function walk(roots, maxFolders = 300) {
  const folders = [];
  const files = [];
  const queue = [...roots];
  while (queue.length && folders.length < maxFolders) {
    const path = queue.shift();
    let listing;
    try {
      listing = await api(drivePath(path));
    } catch (_) {
      continue;
    }
    if (!listing.entries) continue;
    folders.push(path);
    for (const entry of listing.entries) {
      if (entry.type === "folder") {
        if (entry.name !== "steps" && entry.name !== "results") queue.push(entry.path);
      } else {
        files.push(entry.path);
      }
    }
  }
  return { folders, files };
}
