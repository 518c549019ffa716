"""Voice warnings: Chinese text for road-warden speakers, espeak-ng rendering, speaker adapters."""
