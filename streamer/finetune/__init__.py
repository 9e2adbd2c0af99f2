"""Fine-tuning: LoRA adapters for the parser's model, trained with PEFT and exported as GGUF for llama.cpp.

Needs the `[finetune]` extra (torch, transformers, peft, gguf); the runtime does not.
"""
