from cronwarden.cli import main

main()
