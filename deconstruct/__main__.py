"""``python -m deconstruct`` is the ``deconstruct`` command."""

from deconstruct.cli import main

if __name__ == "__main__":
    main()
