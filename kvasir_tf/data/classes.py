"""The Kvasir v2 class list: one place, so every model's output order is the same."""

# Alphabetical, as the folders of the official archive sort; a model's output i is class i.
KVASIR_V2_CLASSES = (
    "dyed-lifted-polyps",
    "dyed-resection-margins",
    "esophagitis",
    "normal-cecum",
    "normal-pylorus",
    "normal-z-line",
    "polyps",
    "ulcerative-colitis",
)

# The folder name inside the official archive (kvasir-dataset-v2.zip).
KVASIR_V2_DIRNAME = "kvasir-dataset-v2"
