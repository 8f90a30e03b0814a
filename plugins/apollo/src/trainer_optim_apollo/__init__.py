"""APOLLO / APOLLO-Mini (https://github.com/zhuhanqing/APOLLO) as a trainer-optim plugin."""
