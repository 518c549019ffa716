"""The enforcement analytics: illegal parking, dumping, smoke/fire, standing water."""
