// A GenAI agent instrumented by hand with the OpenTelemetry JavaScript SDK, exporting over OTLP/HTTP
// (protobuf) to whatever OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_HEADERS say, as a user
// configures it: a conversation (gen_ai.conversation.id, user.id) of two chat rounds, the first
// making its HTTP request (a client span under it) and asking for a tool (gen_ai.output.messages),
// which the agent runs (an execute_tool span beside it, tied by gen_ai.tool.call.id).
// What its in-memory exporter saw is printed as one JSON line, for the test to compare.
//
//   node session.js --conversation ID --user ID
import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

function arg(name) {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0 || at + 1 >= process.argv.length) {
    console.error(`--${name} is required`);
    process.exit(2);
  }
  return process.argv[at + 1];
}

const results = [];
const otlp = new OTLPTraceExporter();
const recording = {
  export(spans, done) {
    otlp.export(spans, (result) => {
      results.push(`${result.code === 0 ? "SUCCESS" : "FAILURE"} (${spans.length} spans)${result.error ? `: ${result.error}` : ""}`);
      done(result);
    });
  },
  shutdown: () => otlp.shutdown(),
  forceFlush: () => otlp.forceFlush(),
};
const memory = new InMemorySpanExporter();
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": "node-agent" }),
  spanProcessors: [new SimpleSpanProcessor(memory), new BatchSpanProcessor(recording)],
});
const tracer = provider.getTracer("node-agent");
const session = { "gen_ai.conversation.id": arg("conversation"), "user.id": arg("user") };

function child(parent, name, options) {
  return tracer.startSpan(name, options, trace.setSpan(context.active(), parent));
}

function chat(parent, model, usage) {
  return child(parent, `chat ${model}`, {
    kind: SpanKind.CLIENT,
    attributes: {
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "anthropic",
      "gen_ai.request.model": model,
      "gen_ai.usage.input_tokens": usage.input,
      "gen_ai.usage.output_tokens": usage.output,
      "gen_ai.usage.cache_read.input_tokens": usage.cacheRead,
      "gen_ai.usage.cache_creation.input_tokens": usage.cacheWrite,
      ...session,
    },
  });
}

const agent = tracer.startSpan("invoke_agent coder", {
  attributes: { "gen_ai.operation.name": "invoke_agent", ...session },
});
const first = chat(agent, "claude-sonnet-4-5", { input: 2400, output: 180, cacheRead: 2048, cacheWrite: 128 });
// its answer asked for a tool: the tool's span (a sibling) names the call id the answer gave
first.setAttribute(
  "gen_ai.output.messages",
  JSON.stringify([
    { role: "assistant", parts: [{ type: "tool_call", id: "toolu_01", name: "grep", arguments: { pattern: "TODO" } }] },
  ]),
);
const http = child(first, "POST", {
  kind: SpanKind.CLIENT,
  attributes: {
    "http.request.method": "POST",
    "url.full": "https://api.anthropic.com/v1/messages",
    "server.address": "api.anthropic.com",
    "http.response.status_code": 200,
  },
});
http.end();
first.end();
const tool = child(agent, "execute_tool grep", {
  attributes: {
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "grep",
    "gen_ai.tool.call.id": "toolu_01",
    ...session,
  },
});
tool.setStatus({ code: SpanStatusCode.ERROR, message: "no match" });
tool.setAttribute("error.type", "NoMatch");
tool.end();
chat(agent, "claude-sonnet-4-5", { input: 2700, output: 95, cacheRead: 2432, cacheWrite: 0 }).end();
agent.end();

try {
  await provider.forceFlush(); // a failed export rejects here; its result is in `results` too
} catch (error) {
  results.push(`FAILURE: ${error}`);
}
// HrTime [seconds, nanoseconds] as a string of nanoseconds (beyond a double's exact integers)
const nanos = ([seconds, nanoseconds]) => (BigInt(seconds) * 1_000_000_000n + BigInt(nanoseconds)).toString();
const kinds = ["INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"];
const statuses = ["UNSET", "OK", "ERROR"];
const spans = memory.getFinishedSpans().map((s) => ({
  trace_id: s.spanContext().traceId,
  span_id: s.spanContext().spanId,
  parent_span_id: s.parentSpanContext ? s.parentSpanContext.spanId : null,
  name: s.name,
  start_ns: nanos(s.startTime),
  end_ns: nanos(s.endTime),
  kind: kinds[s.kind],
  scope: s.instrumentationScope.name,
  status: statuses[s.status.code],
  attributes: s.attributes,
  events: s.events.map((e) => ({ name: e.name, time_ns: nanos(e.time), attributes: e.attributes ?? {} })),
}));
await provider.shutdown().catch(() => {}); // (shutting down empties the in-memory exporter)
console.log(JSON.stringify({ spans, exports: results }));
