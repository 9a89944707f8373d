// The official `openai` npm package against a live mock: the requests of
// test_openai_python.py, sent from Node. Prints one JSON object of what it observed;
// tests/clients/test_openai_node.py judges it.
//
// Environment: QUOTA_BASE_URL (the mock), QUOTA_API_KEY, QUOTA_NODE_PREFIX (where npm
// installed `openai`; ES modules ignore NODE_PATH, so it is resolved from there).
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(`${process.env.QUOTA_NODE_PREFIX}/package.json`);
const { default: OpenAI } = await import(pathToFileURL(require.resolve("openai")).href);

const base = process.env.QUOTA_BASE_URL;
const apiKey = process.env.QUOTA_API_KEY;
const model = "gpt-4o-mini";
const ask = [{ role: "user", content: "What is the weather in Paris?" }];
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
};
const client = (path = "/v1", options = {}) => new OpenAI({ baseURL: base + path, apiKey, maxRetries: 0, ...options });

async function refusal(promise) {
  try {
    await promise;
    return { status: 200 };
  } catch (error) {
    return { status: error.status, code: error.code, type: error.constructor.name, message: error.message };
  }
}

const out = {};
const developer = await client().chat.completions.create({ model, messages: ask });
out.developer = { quota: developer.quota, content: developer.choices[0].message.content, usage: developer.usage };
const user = await client("/v1/users/user_123").chat.completions.create({ model, messages: ask });
out.user = { quota: user.quota };
const header = await client("/v1", { defaultHeaders: { "X-External-User-ID": "user_123" } }).chat.completions.create({
  model,
  messages: ask,
});
out.header = { quota: header.quota };

for (const [name, extra] of [
  ["stream", {}],
  ["stream_usage", { stream_options: { include_usage: true } }],
]) {
  const stream = await client().chat.completions.create({ model, messages: ask, stream: true, ...extra });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  out[name] = {
    content: chunks.map((c) => c.choices[0]?.delta?.content ?? "").join(""),
    last: chunks.at(-1),
    usages: chunks.slice(0, -1).map((c) => c.usage ?? null),
  };
}

const parts = await client().chat.completions.create({
  model,
  messages: [
    {
      role: "user",
      content: [
        { type: "text", text: "What is the weather in Paris?" },
        { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
        { type: "input_audio", input_audio: { data: "UklGRiQAAABXQVZF", format: "wav" } },
      ],
    },
  ],
});
out.parts = { usage: parts.usage };

const messages = [...ask];
const first = await client().chat.completions.create({ model, messages, tools: [weather] });
const call = first.choices[0].message.tool_calls[0];
messages.push(first.choices[0].message, { role: "tool", tool_call_id: call.id, content: "Sunny, 21 C" });
const second = await client().chat.completions.create({ model, messages, tools: [weather] });
out.tools = {
  first_finish: first.choices[0].finish_reason,
  call_name: call.function.name,
  arguments: JSON.parse(call.function.arguments),
  second_finish: second.choices[0].finish_reason,
  second_content: second.choices[0].message.content,
};

out.errors = {
  400: await refusal(client().chat.completions.create({ model, messages: ask, temprature: 0.2 })),
  401: await refusal(
    new OpenAI({ baseURL: `${base}/v1`, apiKey: "sk-quota-wrong", maxRetries: 0 }).chat.completions.create({
      model,
      messages: ask,
    }),
  ),
  402: await refusal(client("/v1/users/user_456").chat.completions.create({ model, messages: ask })),
  404: await refusal(client("/v1/users/nobody").chat.completions.create({ model, messages: ask })),
};
console.log(JSON.stringify(out));
