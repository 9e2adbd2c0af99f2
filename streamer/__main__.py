from streamer.cli import main

if __name__ == "__main__":  # a spawned child process (the parser's) imports this module too
    main()
