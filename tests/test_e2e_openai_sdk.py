"""The official openai SDK as client, through the real server process: sync, async, streaming."""

from __future__ import annotations

import asyncio

import openai
import pytest

MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]


def test_sync_client_gets_a_routed_completion_and_the_header(proxy, reset_backend):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused")
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES, temperature=0.2)
    completion = raw.parse()
    routed = raw.headers["x-routellm-routed-model"]
    assert routed in ("strong-model", "weak-model")
    assert completion.model == routed  # the fake backend answers with the model it was asked for
    assert completion.choices[0].message.content == "fake answer \u00e9"
    assert completion.usage.total_tokens == 10


def test_sync_streaming_keeps_every_chunk_and_the_usage_chunk(proxy, reset_backend):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused")
    stream = client.chat.completions.create(model="auto", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(f"tök{i} \u2603 " for i in range(20))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 20


def test_async_client_concurrent_requests(proxy, reset_backend):
    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="unused")
        prompts = [f"Question number {i}: explain recursion" for i in range(16)]

        async def one(prompt: str) -> str:
            raw = await client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": prompt}])
            return raw.headers["x-routellm-routed-model"]

        try:
            return await asyncio.gather(*(one(p) for p in prompts))
        finally:
            await client.close()

    routed = asyncio.run(main())
    assert set(routed) <= {"strong-model", "weak-model"} and len(routed) == 16


def test_async_streaming(proxy, reset_backend):
    async def main() -> str:
        client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="unused")
        try:
            stream = await client.chat.completions.create(model="router-random-0.5", messages=MESSAGES, stream=True)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        finally:
            await client.close()

    assert asyncio.run(main()).startswith("tök0")


def test_sdk_sees_switchyard_errors_as_api_errors(proxy):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="router-unknown-0.5", messages=MESSAGES)
    assert "unknown router" in caught.value.message


def test_completions_endpoint(proxy, reset_backend):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused")
    raw = client.completions.with_raw_response.create(model="auto", prompt="Say hi")
    assert raw.headers["x-switchyard-decision"] in ("strong", "weak")
