"""The Anthropic SDK through oca-proxy: a streamed answer, a tool call and its result,
and a token count. Model names are mapped by the proxy's settings (model_mapping)."""

import anthropic

client = anthropic.Anthropic(base_url="http://localhost:8669", api_key="dummy")
MODEL = "claude-sonnet-4-6"  # or any name your model_mapping knows, or an oca/ model id

with client.messages.stream(
    model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "Hello!"}]
) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
print()

tools = [
    {
        "name": "get_weather",
        "description": "Current weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
messages: list = [{"role": "user", "content": "What is the weather in Oslo?"}]
reply = client.messages.create(model=MODEL, max_tokens=1024, tools=tools, messages=messages)
calls = [block for block in reply.content if block.type == "tool_use"]
if calls:
    messages.append({"role": "assistant", "content": reply.content})
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 C"}
                for call in calls
            ],
        }
    )
    reply = client.messages.create(model=MODEL, max_tokens=1024, tools=tools, messages=messages)
print("".join(block.text for block in reply.content if block.type == "text"))

count = client.messages.count_tokens(model=MODEL, messages=messages)
print(f"{count.input_tokens} input tokens (a local estimate that errs high)")
