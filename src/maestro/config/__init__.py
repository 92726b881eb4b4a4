"""config.yaml: the typed model, reading it (one-line errors naming file, line and key) and writing it
(``maestro init``).
"""

from maestro.config.model import Config
from maestro.config.reader import load_config, parse_config
from maestro.config.writer import default_config_yaml
from maestro.core.errors import ConfigError

__all__ = ["Config", "ConfigError", "default_config_yaml", "load_config", "parse_config"]
