"""Typer commands over the Python API."""

TTA_HELP = ("Test-time augmentation: average the probabilities of 4 views of each image (centre, mirrored, top-left "
            "and bottom-right crops); 4x the model's work.")
