"""``python -m didban.scale ingest|aggregate|series``, and the file ``spark-submit`` runs:
``spark-submit --master yarn "$(python -c 'import didban.scale.__main__ as m;
print(m.__file__)')" ingest …`` (``--master`` then comes from spark-submit: pass
``--master ''``)."""

from __future__ import annotations

from didban.scale.cli import scale_app

if __name__ == "__main__":
    scale_app()
