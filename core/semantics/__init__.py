"""Open-vocabulary semantics: 2D segments, per-segment descriptors, 2D->3D lifting, text queries.

- ``segment_classical``  weight-free segmenter (superpixels merged on colour + depth + normals)
- ``segment_sam``        segment-anything automatic masks from a local checkpoint
- ``descriptors``        object-level descriptors: the encoder's embedding of each masked crop
- ``openclip_encoder``   any open_clip model as image + text encoder (local checkpoint)
- ``text_encoder``       offline all-MiniLM-L6-v2, the compact encoder's text space
- ``projection``         projection, z-buffer, depth renders of the cloud, normals
- ``lifting``            masks of keyframes -> 3D segments (SemanticScene.segment_id / segments)
- ``query``              text -> scores per segment / point, vocabulary labels
- ``stage``              the pipeline stage tying them together

Submodules import their heavy dependencies (torch, open_clip, segment-anything) lazily;
importing this package is cheap.
"""
