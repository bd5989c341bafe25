// Agents: choose a pattern, fill its inputs, then watch POST /api/agents/<pattern>/ stream its
// steps (data-step, updated in place by id), tool calls, the result's JSON text and the result.
import { api, request } from "./api.js";
import { readFrames } from "./stream.js";
import { $, el, formatDate, humanize, renderValue, showError } from "./ui.js";

/** pattern → [description, {field: [label, example, multiline?]}] */
const PATTERNS = {
  sequential: ["Sequential: write marketing copy, evaluate it, improve it if it scores below 7.", {
    input: ["Product or topic", "A reusable water bottle that reminds you to drink", true],
  }],
  routing: ["Routing: classify a customer query, then answer with the right specialist and model.", {
    query: ["Customer query", "I was charged twice this month. Can I get a refund?", true],
  }],
  parallel: ["Parallel: security, performance and maintainability reviews at once, then a summary.", {
    code: ["Code to review", [
      "def find_user(users, name):",
      "    for user in users:",
      "        if user['name'] == name:",
      "            return user",
      "    return eval(name)",
    ].join("\n"), true],
  }],
  orchestrator: ["Orchestrator: plan the tasks of a feature, one worker per task, then a summary.", {
    featureDescription: ["Feature description", "Let users reset their password by email", true],
  }],
  evaluator: ["Evaluator-optimizer: translate, then evaluate and improve up to 3 rounds.", {
    text: ["Text to translate", "Our new app keeps your notes in sync across all your devices.", true],
    targetLanguage: ["Target language", "French"],
    domain: ["Domain", "marketing"],
  }],
  tools: ["Tools: solve a math problem with a calculator and an answer checker.", {
    problem: ["Math problem", "A train goes 240 km in 3 h, then 150 km in 2 h. Its average speed?", true],
  }],
};

const form = $("#agent-form");
const select = $("#pattern");
const steps = $("#steps");
const errorBox = $("#agents-error");
let controller = null;
let stepItems = new Map(); // step or tool call id → its <li>
let toolCalls = new Map(); // tool call id → {toolName, input, output}

select.append(...Object.keys(PATTERNS).map((name) => el("option", { value: name }, humanize(name))));
select.addEventListener("change", () => showFields());

function showFields(values = {}) {
  const [description, fields] = PATTERNS[select.value];
  const inputs = Object.entries(fields).map(([name, [label, example, multiline]]) => {
    const input = el(multiline ? "textarea" : "input", { name, required: true, rows: multiline && 4 });
    input.value = values[name] ?? example;
    return el("label", {}, label, input);
  });
  $("#agent-fields").replaceChildren(el("p", { class: "muted" }, description), ...inputs);
}

export async function loadRuns() {
  const page = await api("/api/agents/runs/");
  $("#runs").replaceChildren(...page.results.map((run) => el("li", {},
    el("a", { href: `#/agents/${run.id}` }, humanize(run.pattern)),
    el("small", { class: "muted" }, `${run.status} · ${formatDate(run.created_at)}`))));
}

/** Shows a saved run (with its steps and final output), or a fresh form when `id` is null. */
export async function openRun(id) {
  controller?.abort();
  showError(errorBox, null);
  if (!id) {
    $("#run-output").hidden = true;
    showFields();
    return;
  }
  const run = await api(`/api/agents/runs/${id}/`);
  select.value = run.pattern;
  showFields(run.input ?? {});
  resetOutput(`${humanize(run.pattern)} · ${run.status} · ${formatDate(run.created_at)}`);
  for (const step of run.steps ?? []) {
    showStep(step.id, { ...step, durationMs: step.duration_ms, usage: { totalTokens: step.total_tokens } });
  }
  if (run.final_output) showResult(run.final_output);
  if (run.error) showError(errorBox, `The run failed: ${run.error}`);
}

function resetOutput(heading) {
  $("#run-output").hidden = false;
  $("#run-title").textContent = heading;
  steps.replaceChildren();
  stepItems = new Map();
  toolCalls = new Map();
  $("#result-text").textContent = "";
  $("#result-json").open = true;
  $("#result").replaceChildren();
}

function showStep(id, { name, status, output, error, durationMs, usage }) {
  const item = stepItems.get(id) ?? steps.appendChild(el("li", { class: "step" }));
  stepItems.set(id, item);
  item.dataset.status = status;
  const tokens = usage?.totalTokens ?? usage?.total_tokens;
  const notes = [durationMs != null && `${(durationMs / 1000).toFixed(1)} s`, tokens && `${tokens} tokens`];
  const parts = [
    el("div", { class: "step-head" },
      el("strong", {}, humanize(name ?? String(id))),
      el("span", { class: "badge" }, status),
      el("small", { class: "muted" }, notes.filter(Boolean).join(" · "))),
    error && el("p", { class: "error" }, error),
    output != null && el("details", {}, el("summary", {}, "Output"), renderValue(output)),
  ];
  item.replaceChildren(...parts.filter(Boolean));
}

/** A tool call, from its `tool-input-available` chunk and then its `tool-output-available` one. */
function showToolCall(chunk) {
  const call = { ...toolCalls.get(chunk.toolCallId), ...chunk };
  toolCalls.set(chunk.toolCallId, call);
  const item = stepItems.get(call.toolCallId) ?? steps.appendChild(el("li", { class: "step tool" }));
  stepItems.set(call.toolCallId, item);
  const done = "output" in call;
  item.dataset.status = done ? "complete" : "running";
  item.replaceChildren(
    el("div", { class: "step-head" },
      el("strong", {}, `Tool: ${call.toolName}`),
      el("span", { class: "badge" }, item.dataset.status)),
    renderValue(done ? { input: call.input, output: call.output } : { input: call.input }));
}

function showResult(result) {
  $("#result-text").textContent = JSON.stringify(result, null, 2);
  $("#result-json").open = false;
  $("#result").replaceChildren(renderValue(result));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (controller) return;
  const { pattern, ...body } = Object.fromEntries(new FormData(form));
  showError(errorBox, null);
  resetOutput(`${humanize(pattern)} · running`);
  const abort = (controller = new AbortController());
  $("#run").hidden = true;
  $("#agent-stop").hidden = false;
  try {
    const headers = { Accept: "text/event-stream" };
    const options = { method: "POST", body, headers, signal: abort.signal };
    const response = await request(`/api/agents/${pattern}/`, options);
    for await (const chunk of readFrames(response)) {
      if (chunk.type === "data-step") showStep(chunk.id, chunk.data);
      else if (chunk.type.startsWith("tool-")) showToolCall(chunk);
      else if (chunk.type === "text-delta") $("#result-text").append(chunk.delta);
      else if (chunk.type === "data-result") showResult(chunk.data);
      else if (chunk.type === "error") showError(errorBox, `The run failed: ${chunk.errorText}`);
      else if (chunk.type === "finish") $("#run-title").textContent = `${humanize(pattern)} · finished`;
    }
  } catch (error) {
    showError(errorBox, error.name === "AbortError" ? "Stopped." : error);
  } finally {
    if (controller === abort) controller = null;
    $("#run").hidden = false;
    $("#agent-stop").hidden = true;
    loadRuns().catch(() => {});
  }
});

$("#agent-stop").addEventListener("click", () => controller?.abort());
