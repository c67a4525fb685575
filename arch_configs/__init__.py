"""The built-in arch configs; the wheel ships this folder as the package ``accelsim.model.arch_configs``."""
