// The waiting room's admission, as the booking screens use it: a hold refused with
// queue_token_required sends the citizen to the sale's waiting room (queue.js); once
// admitted, the token is kept for this tab and sent with the next hold, then dropped
// (it is single-use).
const KEY = "fairseat.queuetoken";

export function queueHeaders() {
  const token = sessionStorage.getItem(KEY);
  return token ? { "Queue-Token": token } : {};
}

export function keepQueueToken(token) {
  sessionStorage.setItem(KEY, token);
}

export function spendQueueToken() {
  sessionStorage.removeItem(KEY);
}

// True if the error was the waiting room's: the caller stops, the page moves on.
export function toWaitingRoom(err) {
  if (!err || err.code !== "queue_token_required" || !err.fields.sale_id) return false;
  spendQueueToken();
  const back = encodeURIComponent(location.hash || "#/");
  location.hash = `#/queue/${encodeURIComponent(err.fields.sale_id)}?back=${back}`;
  return true;
}
