// An app written against types generated from openapi.yaml (openapi-typescript), calling the
// mock through openapi-fetch. It must compile under `tsc --strict`: a contract whose schemas a
// generator cannot type (an allOf of if/then, a field made required by its default) fails here.
import createClient from "openapi-fetch";
import type { components, paths } from "./quota";

declare const process: { env: Record<string, string | undefined> };
type Schemas = components["schemas"];

const client = createClient<paths>({
  baseUrl: process.env.QUOTA_BASE_URL,
  headers: { Authorization: `Bearer ${process.env.QUOTA_API_KEY}` },
});

// Every role, every content part, tools, a tool call and its answer, as an app writes them.
const history: Schemas["ChatMessage"][] = [
  { role: "system", content: "Be brief." },
  { role: "developer", content: [{ type: "text", text: "Answer in English." }] },
  { role: "user", content: [
    { type: "text", text: "What is in this picture, and the weather in Paris?" },
    { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
  ] },
  { role: "assistant", content: null, tool_calls: [
    { id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } },
  ] },
  { role: "tool", tool_call_id: "call_1", content: "{\"temperature\": 21}" },
  { role: "user", content: "Thanks." },
];
const tools: Schemas["ChatTool"][] = [
  { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } },
];
const plain: Schemas["ChatCompletionRequest"] = { model: "gpt-4o-mini", messages: history, max_tokens: 16 };

async function main(): Promise<void> {
  const seen: Record<string, unknown> = {};
  const grant = await client.POST("/v1/funding/grant", {
    params: { header: { "Idempotency-Key": "typed-client-1" } },
    body: { external_user_id: "typed_user", amount: 2.5, description: "Welcome bonus" },
  });
  if (!grant.data) throw new Error(`grant answered ${grant.response.status}`);
  seen.balance_after = grant.data.balance_after;
  seen.duplicate = grant.data.duplicate;

  const read = await client.GET("/v1/users/{external_user_id}/balance", {
    params: { path: { external_user_id: "typed_user" } },
  });
  seen.read = read.data?.balance;

  const chat = await client.POST("/v1/users/{external_user_id}/chat/completions", {
    params: { path: { external_user_id: "typed_user" } },
    body: { ...plain, tools, tool_choice: "auto" },
  });
  const answer = chat.data;
  if (!answer || !("choices" in answer)) throw new Error(`chat answered ${chat.response.status}`);
  seen.finish_reason = answer.choices[0].finish_reason;
  seen.credits_used = answer.quota.credits_used;

  const structured = await client.POST("/v1/chat/completions", {
    params: { header: { "X-External-User-ID": "typed_user" } },
    body: { ...plain, response_format: { type: "json_schema", json_schema: { name: "weather", schema: {
      type: "object", properties: { city: { type: "string" } }, required: ["city"] } } } },
  });
  const json = structured.data;
  if (!json || !("choices" in json)) throw new Error(`structured chat answered ${structured.response.status}`);
  seen.structured = JSON.parse(json.choices[0].message.content ?? "null");

  const streamed = await client.POST("/v1/users/{external_user_id}/chat/completions", {
    params: { path: { external_user_id: "typed_user" } },
    body: { ...plain, stream: true, stream_options: { include_usage: true } },
    parseAs: "text",
  });
  seen.stream_ends = typeof streamed.data === "string" && streamed.data.trimEnd().endsWith("data: [DONE]");

  const refused = await client.POST("/v1/funding/grant", { body: { external_user_id: "typed_user", amount: 0.001 } });
  seen.refused = [refused.response.status, refused.error?.error.code];
  console.log(JSON.stringify(seen));
}

main().catch((error: unknown) => {
  console.error(error);
  throw error;
});
