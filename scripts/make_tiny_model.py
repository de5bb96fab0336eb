#!/usr/bin/env python3
"""Write a tiny, fully local "model" folder for the Dynamo mocker.

Usage: python scripts/make_tiny_model.py DIR

Writes DIR/config.json, DIR/tokenizer.json, DIR/tokenizer_config.json and
DIR/generation_config.json. No weights: the mocker only needs a tokenizer and
a config. Nothing is downloaded. Uses only the `tokenizers` library (ships with
transformers in .venv-dynamo) and json. The output is deterministic: the
byte-level BPE is trained single-threaded on a fixed corpus, and all JSON is
written with sorted keys.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Training must be single-threaded to be reproducible byte-for-byte.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tokenizers.processors import ByteLevel as ByteLevelProcessor

BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
EOT = "<|eot_id|>"
START = "<|start_header_id|>"
END = "<|end_header_id|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = [BOS, EOS, EOT, START, END, PAD]  # ids 0..5

VOCAB_SIZE = 512  # trained byte-level BPE part (incl. specials)
TOTAL_VOCAB = 2048  # padded with filler words; must exceed 2000 (see below)

CORPUS = [
    "Switchyard routes each request to a strong model or a weak model.",
    "The quick brown fox jumps over the lazy dog.",
    "Hello! How are you today? I am fine, thank you.",
    "Write a short poem about the sea and the stars.",
    "What is the capital of France? The capital of France is Paris.",
    "Explain how a router decides between two language models.",
    "def add(a, b):\n    return a + b\n",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000.",
    "The mocker engine simulates prefill and decode timing on the CPU.",
    "A tiny tokenizer is enough for testing the serving stack end to end.",
    "system user assistant tool function message content role",
]

# Llama-3 style chat template; tolerates list-of-parts content.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['content'] is string %}{% set content = message['content'] %}"
    "{% else %}{% set content = message['content'] | map(attribute='text') | join('') %}{% endif %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ content | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def build_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = ByteLevelProcessor(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    # The Dynamo 1.6.1 mocker emits uniformly random token ids in [1000, 2000),
    # whatever the vocab. Pad the vocab with ordinary (non-special) word tokens
    # up to TOTAL_VOCAB so those ids decode to visible text (" kabe lomi ...");
    # otherwise every completion's content is empty/null.
    fillers = []
    while tok.get_vocab_size() + len(fillers) < TOTAL_VOCAB:
        fillers.append(filler_word(len(fillers)))
    tok.add_tokens(fillers)
    return tok


def filler_word(i: int) -> str:
    c, v = "bdfghjklmnprstvwz", "aeiou"
    return " " + c[i % 17] + v[(i // 17) % 5] + c[(i // 85) % 17] + v[(i // 1445) % 5]


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)

    tok = build_tokenizer()
    vocab_size = tok.get_vocab_size()
    bos_id = tok.token_to_id(BOS)
    eos_id = tok.token_to_id(EOS)
    eot_id = tok.token_to_id(EOT)
    pad_id = tok.token_to_id(PAD)

    # Re-serialize with sorted keys so the file is byte-identical across runs.
    tok_json = json.loads(tok.to_str())
    write_json(out / "tokenizer.json", tok_json)

    write_json(
        out / "tokenizer_config.json",
        {
            "added_tokens_decoder": {
                str(tok.token_to_id(t)): {
                    "content": t,
                    "lstrip": False,
                    "normalized": False,
                    "rstrip": False,
                    "single_word": False,
                    "special": True,
                }
                for t in SPECIAL_TOKENS
            },
            "bos_token": BOS,
            "chat_template": CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": EOT,
            "model_max_length": 4096,
            "pad_token": PAD,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )

    write_json(
        out / "config.json",
        {
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "bos_token_id": bos_id,
            "eos_token_id": [eos_id, eot_id],
            "hidden_act": "silu",
            "hidden_size": 64,
            "initializer_range": 0.02,
            "intermediate_size": 128,
            "max_position_embeddings": 4096,
            "model_type": "llama",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 2,
            "pad_token_id": pad_id,
            "rms_norm_eps": 1e-05,
            "rope_theta": 10000.0,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
            "vocab_size": vocab_size,
        },
    )

    write_json(
        out / "generation_config.json",
        {"bos_token_id": bos_id, "eos_token_id": [eos_id, eot_id], "pad_token_id": pad_id},
    )
    print(f"wrote tiny model to {out} (vocab_size={vocab_size})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
