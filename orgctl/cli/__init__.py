"""The click commands: thin (parse, call one core function, render).

Heavy modules (gitpython, litellm) are imported inside commands, so
``orgctl --help`` starts fast.
"""
