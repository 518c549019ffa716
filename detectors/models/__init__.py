"""The model toolkit: labelled scene clips, YOLO datasets, training, export and evaluation (`qinghe models`)."""
