"""How the model's answers become Label Studio regions: read in any output mode, labels found in prose, spans and
shapes placed, the prediction's score."""
