/// rules/default.yaml, embedded so that `dropline init` works from an installed binary.
/// Generated from that file by scripts/embed-default-rules; a test checks the two are identical.
enum DefaultRules {
    static let yaml = #"""
# Dropline's default rules: the loop of the cloud design.
#
# `dropline init` copies this file to <root>/rules.yaml; edit that copy. The watch daemon reads it
# (and reloads it when it changes). Each rule says on which event it fires (`on`), optionally for which
# paths (`match`, with named captures in braces) and under which conditions (`when`), and what to do
# (`do`, run in order).
version: 1
rules:
  # Every production batch that lands (its _READY marker appeared, or it settled) is served with the
  # champion model: predictions, drift check, explanations.
  - name: infer-every-batch
    on: batch_landed
    match: production/{stage}/{batch}
    do:
      - infer: {}

  # A batch straight under production/ (no stage folder) is served too. Its drift flag names no stage,
  # so the drift rule below does not retrain on it and says why (put batches under
  # production/<stage>/ to have drift retrain on that stage).
  - name: infer-unstaged-batch
    on: batch_landed
    match: production/{batch}
    do:
      - infer: {}

  # A drift flag retrains on the train and validation data of the stage the drifted batch belongs to,
  # then promotes the new model if the promotion policy allows (validation accuracy at least the
  # champion's minus 0.01).
  - name: retrain-on-drift
    on: flag_created
    kind: drift
    do:
      - train:
          stage: "{flag.stage}"
      - promote:
          policy: default

  # A person or a program can ask for retraining: flags/retrain/<stage>.json.
  - name: retrain-on-request
    on: flag_created
    kind: retrain
    match: flags/retrain/{stage}.json
    do:
      - train:
          stage: "{stage}"
      - promote:
          policy: default

  # Ground truth for a served batch (inbox/labels/<batch>.csv, header image,class) is merged into the
  # index: accuracy per batch, and a quality flag when it falls below the constraint.
  - name: merge-labels
    on: labels_landed
    match: labels/{file}
    do:
      - merge_labels: {}

  # Ground truth showed the champion below its accuracy constraint on a labelled batch
  # (`dropline labels`): retrain on that batch's stage, as for drift.
  - name: retrain-on-quality
    on: flag_created
    kind: quality
    do:
      - train:
          stage: "{flag.stage}"
      - promote:
          policy: default

  # A batch broke the data-quality constraints learned from the champion's training images
  # (thumbnails, blank frames, another colour model, duplicates, refused files: its run folder's
  # monitoring/quality.json lists each violation and the images concerned). It is reported in the
  # daemon's log, `dropline status` and the run's page; nothing is retrained (new training data would
  # not fix a broken camera). To retrain on it anyway, replace `report` with the train and promote
  # actions of retrain-on-drift.
  - name: report-data-quality
    on: flag_created
    kind: data_quality
    do:
      - report: {}

"""#
}
