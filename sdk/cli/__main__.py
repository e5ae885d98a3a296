from tamis.cli._app import main

main()
