"""What ``memo-zoo train --config-file`` tells the ranks it starts through ``accelerate launch``
(torch-free: the CLI reads it before anything heavy is imported)."""

# The accelerate config file a job was launched with, so that the trainer's errors about it name
# the file (accelerate itself passes its settings on as ACCELERATE_* variables, not the path).
CONFIG_FILE_VARIABLE = "MEMO_ZOO_ACCELERATE_CONFIG"
