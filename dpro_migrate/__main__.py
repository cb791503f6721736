from dpro_migrate.cli import main

main()
