"""Compressed variants of a model: quantised, converted and pruned GGUF files, made with llama.cpp's own tools."""
