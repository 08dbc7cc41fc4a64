print("pgkeep")
