"""The FIRE network (§3.1-3.3)."""

from firereg.model.affine_net import AffineNet
from firereg.model.decoder import Decoder
from firereg.model.encoder import Encoder
from firereg.model.fire import MIN_SIZE, FireModel, FireOutput, Registration
from firereg.model.nonrigid_net import NonRigidNet
from firereg.model.transformation import TransformationNet, TransformParts

__all__ = ["MIN_SIZE", "AffineNet", "Decoder", "Encoder", "FireModel", "FireOutput",
           "NonRigidNet", "Registration", "TransformParts", "TransformationNet"]
