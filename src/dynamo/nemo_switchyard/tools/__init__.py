"""Offline tools behind ``switchyard score | calibrate | eval | train`` (one module per tool).

They build routers exactly as the server does (``common.build_router``), extract prompts
with the server's ``prompt.extract_prompt`` and score in batches in the calling thread.
Heavy imports (matplotlib, the training code) happen only in the tool that needs them.
"""
