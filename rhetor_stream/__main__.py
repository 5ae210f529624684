"""`python -m rhetor_stream`: see `rhetor_stream.cli`."""
from rhetor_stream.cli import main

if __name__ == "__main__":
    main()
