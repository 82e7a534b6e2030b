"""Eureka-Audio: configuration, audio encoder, MoE adapter, modeling, processing, training, evaluation."""
