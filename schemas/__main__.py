"""`python -m schemas`: rewrite the committed JSON Schema files from the models."""

from pathlib import Path

from schemas import SCHEMA_FILES, json_schema_text

here = Path(__file__).parent
for name, model in SCHEMA_FILES.items():
    (here / name).write_text(json_schema_text(model))
    print(f"wrote schemas/{name}")
