"""APOLLO / APOLLO-Mini (https://github.com/zhuhanqing/APOLLO) as a trainer-optim plugin."""

__version__ = "0.1.0"
