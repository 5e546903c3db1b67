"""The OpenAI SDK through oca-proxy: chat (streamed) and the Responses API."""

from openai import OpenAI

client = OpenAI(base_url="http://localhost:8669/v1", api_key="dummy")

for chunk in client.chat.completions.create(
    model="oca/gpt-4.1", stream=True, messages=[{"role": "user", "content": "Hello!"}]
):
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
print()

response = client.responses.create(model="oca/gpt-5", input="Say hi in French")
print(response.output_text)
