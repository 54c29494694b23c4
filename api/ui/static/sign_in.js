// The sign-in form: the token goes to /ui/session as JSON; the session cookie comes back.
const form = document.getElementById("sign-in-form");
const error = document.getElementById("sign-in-error");
const input = document.getElementById("token");

function next() {
  const asked = new URLSearchParams(location.search).get("next") || form.dataset.next || "";
  // Only a path of this site (a browser reads "/\host" as "//host"); the sign-in page
  // itself would loop.
  const local = asked.startsWith("/") && !asked.startsWith("//") && !asked.includes("\\");
  if (local && asked !== "/" && !asked.startsWith("/?")) {
    return asked.replace(/\?$/, "");
  }
  return "/jobs";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const token = input.value.trim();
  if (!token) {
    error.textContent = "Enter a token or an API key.";
    error.hidden = false;
    input.focus();
    return;
  }
  const response = await fetch("/ui/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
    credentials: "same-origin",
  });
  if (response.ok) {
    window.location.assign(next());
    return;
  }
  let message = "Sign-in failed.";
  try {
    message = (await response.json()).msg || message;
  } catch (_) {
    // keep the generic message
  }
  error.textContent = message.startsWith("the token or API key is not valid")
    ? "That token or API key is not valid. Check it and try again."
    : message;
  error.hidden = false;
  input.select();
});
input.focus();
