"""Runtime backends: the litellm adapter (`llm`) and the in-process providers it registers.

`llm` is the only module that imports litellm; `offline` (rule-based rewriter for tests and
dry runs) and `embedded` (llama.cpp with the bundled GGUF model) are plain Python engines that
`llm` wraps as litellm custom providers.
"""
