"""Video quality measures: the paper's MAWE, SCuts and CLIP score, plus seam and flow-smoothness
measures at chunk boundaries (``evaluate`` runs them all on a video).

Each measure is a function over frames (and, where needed, a model passed in), so tests feed
synthetic videos with known answers. Heavy optional pieces (scenedetect, the models) are imported by
the modules that need them; importing this package costs only torch.
"""

from .seams import (FlowSmoothness, SeamReport, flow_smoothness, overlap_transitions, seam_report,
                    seam_report_from_transitions, seam_score, transition_energy)

__all__ = ["FlowSmoothness", "SeamReport", "flow_smoothness", "overlap_transitions", "seam_report",
           "seam_report_from_transitions", "seam_score", "transition_energy"]
