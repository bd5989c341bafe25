// Usage: the caller's tokens by day, endpoint and model, from GET /api/usage/.
import { api } from "./api.js";
import { $, el, showError } from "./ui.js";

const COLUMNS = ["day", "endpoint", "model", "calls", "input_tokens", "output_tokens", "total_tokens"];

export async function loadUsage() {
  const { total_tokens: total, rows } = await api("/api/usage/");
  $("#usage-total").textContent = `${total.toLocaleString()} tokens in total.`;
  const cells = (row) => COLUMNS.map((name) => el("td", {}, String(row[name] ?? "")));
  $("#usage-rows").replaceChildren(...rows.map((row) => el("tr", {}, ...cells(row))));
  if (!rows.length) {
    $("#usage-rows").append(el("tr", {}, el("td", { colspan: COLUMNS.length }, "No usage yet.")));
  }
}

$("#usage-refresh").addEventListener("click", () => {
  loadUsage().catch((error) => showError($("#usage-error"), error));
});
