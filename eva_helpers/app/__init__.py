"""A Gradio app for a trained model: top classes, Grad-CAM, the test split's mistakes, and a Space to export.

python -m eva_helpers.app --model outputs/model.pt               # serve it on localhost
python -m eva_helpers.app export --model outputs/model.pt --out outputs/space/

The modules: service (what the app computes, no Gradio), bundle (what it shows besides the model: examples,
mistakes, figures; saved as a folder and read back), card (the model's description), ui (the Gradio layout),
local (an AppModel from model.pt and its data), export (the Space folder). Importing this package imports none
of them; `import eva_helpers` never imports Gradio.
"""
