from fleetgit.cli import main

main()
