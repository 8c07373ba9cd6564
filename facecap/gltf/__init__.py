"""glTF 2.0 exchange: rigs as meshes with 52 named morph targets, takes as morph-weight animations.

Modules: ``format`` (suffixes, accessor component types, sRGB <-> linear colour, and the layout
facecap writes, described in its docstring), ``write`` (:class:`Writer`, :func:`export_rig`,
:func:`export_animation`), ``read`` (:func:`load_gltf`, :func:`morph_target_names`,
:func:`import_rig`). The container is written and parsed by ``pygltflib``. ``RIG_LOADERS`` /
``RIG_SAVERS`` map the suffixes to :func:`import_rig` / :func:`export_rig` for
:mod:`facecap.formats`.
"""

from .format import GLTF_SUFFIXES, linear_to_srgb8, srgb_to_linear
from .read import import_rig, load_gltf, morph_target_names
from .write import Writer, export_animation, export_rig

RIG_LOADERS = {".glb": import_rig, ".gltf": import_rig}
RIG_SAVERS = {".glb": export_rig, ".gltf": export_rig}

__all__ = [
    "GLTF_SUFFIXES", "RIG_LOADERS", "RIG_SAVERS", "Writer", "export_animation", "export_rig",
    "import_rig", "linear_to_srgb8", "load_gltf", "morph_target_names", "srgb_to_linear",
]  # fmt: skip
