"""Eureka-Audio: configuration, audio encoder, MoE adapter, modeling, processing, weights loading.

Importing `model.modeling` registers the `eureka_audio` type with transformers' Auto classes."""
