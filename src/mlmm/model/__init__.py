"""Field-aware schnetpack models for the QM region in electrostatic embedding.

field.py     QM-only neighbour pairs and the MM potential/field at the QM atoms (model inputs)
nn.py        the field-coupled SchNet potential (`build_model`)
train.py     training one ensemble member (`train_member`) with a fixed held-out test split
ensemble.py  committee of members: mean energy/forces and force uncertainty σ (`Ensemble`)
"""
