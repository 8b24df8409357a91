"""The model files of LEAF's packaged models, found by ``leafiqa.list_models()`` and
``leafiqa.create_metric(NAME)`` (``leafiqa.model.registry``). Not under LEAF's Apache-2.0:
research use only, non-commercial (LICENSE of this distribution, README.md and licences/ here).
Written by ``scripts/build_packaged_models.py`` in LEAF's repository."""
