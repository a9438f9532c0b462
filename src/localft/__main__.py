from localft.cli import main

main()
