"""The strong/weak pairs the training scripts report held-out APGR for, per data set.

routerbench_subset is for evaluation only: never train on it.
"""

PAIRS: dict[str, list[tuple[str, str]]] = {
    "mmlu_pro": [
        ("gpt-4o-2024-05-13", "Meta-Llama-3_1-8B-Instruct"),
        ("gpt-4o-2024-05-13", "Mixtral-8x7B-Instruct-v0.1"),
        ("gemini-1.5-pro-002", "Mistral-7B-Instruct-v0.2"),
    ],
    "math_l5": [
        ("gpt-4o-2024-05-13", "Meta-Llama-3.1-8B-Instruct"),
        ("gpt-4o-2024-05-13", "gpt-3.5-turbo-0125"),
        ("claude-3-5-sonnet-20240620", "claude-3-haiku-20240307"),
    ],
    "crux": [
        ("gpt-4o-2024-05-13", "Meta-Llama-3.1-8B-Instruct"),
        ("gpt-4o-2024-05-13", "Mixtral-8x7B-Instruct-v0.1"),
        ("claude-3-5-sonnet-20240620", "claude-3-haiku-20240307"),
    ],
    "arena_hard_v1": [
        ("gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
        ("gpt-4-1106-preview", "mistralai/Mistral-7B-Instruct-v0.1"),
        ("gpt-4-0314", "gpt-3.5-turbo"),
    ],
    "routerbench_subset": [
        ("gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat"),
        ("gpt-4-1106-preview", "mistralai/mistral-7b-chat"),
        ("gpt-4-1106-preview", "meta/llama-2-70b-chat"),
    ],
}
