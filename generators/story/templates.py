"""Sentence templates of the story, by role in a chapter, and the fixed prompt text.

Slots: {place}, {character}, {event}, {item} (bought), {sold} (an item bought earlier). Rules the
token accounting and the checker rely on (tests check them): every slot follows a space; a
sentence ends with "." and has no other "."; an opening sentence starts with a word, not a slot;
only buying sentences hold {item}, only selling sentences {sold}; fillers hold no slot at all.
"""

from __future__ import annotations

PROTAGONIST = "Arion"

# The first sentence of a chapter: arrival at the place.
ARRIVE = (
    "The sun hung low as Arion arrived at {place}, where distant voices filled the air.",
    "At dawn, Arion reached the gates of {place}, where merchants and travelers crowded together.",
    "As evening fell, Arion entered {place}, whose quiet streets seemed to hide small mysteries.",
    "Under a pale sky, Arion approached {place} with every sense alert.",
    "With steady steps, Arion crossed into {place}, drawn on by the murmur of a crowd.",
    "In the fading daylight, Arion set foot in {place}, eager to learn what it could offer.",
    "After a long road, Arion came upon {place}, where old walls and new faces stood side by side.",
    "Carried by a gentle breeze, Arion wandered into {place}, curious about its secrets.",
    "Late in the morning, Arion walked into {place}, dust still clinging to a travel cloak.",
    "When the bells rang noon, Arion passed beneath the arch of {place}.",
    "Following the old trade road, Arion finally reached {place}.",
    "Just before nightfall, Arion found shelter in {place}, tired but watchful.",
)
# Why the protagonist came.
REASON = (
    "Arion had come hoping to learn something new, or perhaps to gain an advantage.",
    "This place might hold a clue that Arion had sought for a long time.",
    "Weary from the road, Arion searched {place} for insight or simple rest.",
    "Arion believed that {place} hid useful knowledge beneath its calm surface.",
    "Rumors had guided Arion here, hinting at treasures of wisdom or wealth.",
    "Long journeys had led Arion to {place}, one step closer to understanding.",
    "In pursuit of the truth, Arion looked to {place} for quiet revelations.",
    "Arion trusted that {place} might provide a missing piece of a larger puzzle.",
    "A quiet determination had brought Arion this far, always searching for meaning.",
    "Instinct told Arion that {place} would reveal something of value.",
)
# What happened there: {event} is a noun phrase such as "a violent storm".
HAPPEN = (
    "Not long after Arion arrived, {event} shook the local order.",
    "Soon enough, {event} seized the attention of everyone in {place}.",
    "Within hours, {event} disrupted the familiar routines of the town.",
    "It was not long before {event} set the stage for new tensions.",
    "Before Arion could settle, {event} changed the mood of the streets.",
    "That same day, {event} became the talk of every corner.",
    "Hardly had Arion arrived before {event} stirred uneasy whispers.",
    "All the while, {event} cast its shadow over {place}, changing plans and minds.",
    "Like a ripple in still water, news of {event} spread through {place}.",
    "The calm broke when {event} brought both fear and opportunity.",
)
# Meeting the chapter's character.
MEET = (
    "There, Arion encountered {character}, who seemed eager to exchange words or goods.",
    "In a quiet courtyard, Arion met {character}, a figure of subtle ambitions.",
    "Soon {character} approached Arion, eyes bright with opportunity.",
    "As Arion ventured further in, {character} stepped forward with measured courtesy.",
    "It was {character} who came forward, offering guidance or perhaps misdirection.",
    "Out of the crowd emerged {character}, greeting Arion with a knowing smile.",
    "Arion found {character} waiting by a fountain, curious about the traveler.",
    "At a busy stall, {character} caught the eye of Arion and waved the traveler over.",
    "Among the gathered faces, {character} beckoned Arion closer.",
    "Before long, Arion fell into conversation with {character}, a local of some renown.",
)
# Conversation: one to three per chapter, distinct within a chapter.
TALK = (
    "In hushed tones they spoke of local customs and distant rumors.",
    "The two discussed the shifting fortunes of traders and travelers.",
    "A short exchange revealed forgotten corners of {place}, where knowledge or secrets might dwell.",
    "They lingered over tales of old alliances and forgotten disputes.",
    "Together they reflected on the nature of trust and deceit.",
    "They debated the meaning of recent events, each seeking patterns in the chaos.",
    "A brief conversation hinted at rare opportunities just beyond reach.",
    "Quiet words passed between them about a larger puzzle taking shape in {place}.",
    "They considered old legends that might still echo in deserted alleys and abandoned shrines.",
    "Their talk circled around subtle clues, each suggestion hinting at undiscovered riches.",
    "They whispered about shifting alliances within {place}, where even loyalty seemed uncertain.",
    "Small gestures betrayed an undercurrent of tension between them.",
    "They traded observations about the hidden networks of the city, ties born of need and ambition.",
    "Their words touched on the delicate negotiations that had once sealed a lasting truce in {place}.",
    "They spoke of old grudges that still lived on in whispers.",
    "In a calm moment, they compared notes on the merchants who passed through {place}.",
    "Their thoughts turned to supply and demand, and to how quickly fortunes can turn.",
    "In measured tones, {character} recalled cryptic hints from travelers who had crossed distant borders.",
    "They wondered about the silent watchers who lurked in the shadows of {place}.",
    "Carefully, they skirted the subject of old feuds, wary of waking sleeping anger.",
    "They recounted rumors of hidden markets behind ordinary doors, where bargains could shift power.",
    "Their conversation touched on unspoken rules of respect and retribution.",
    "They paused to consider the reach of distant rulers, whose orders still rippled through {place}.",
    "Noting the flow of coins, {character} saw signs of deeper unrest beneath a calm surface.",
    "They talked about the art of earning trust where trust was scarce.",
    "For a while, {character} told stories of distant lands, where fortune or ruin awaited bold seekers.",
    "They compared accounts of strange visitors, each arrival a new riddle for {place}.",
    "In the end, they agreed that truly understanding {place} required patience and steady resolve.",
)
# Buying the chapter's item (every chapter but the quiet ones of story_aggregation).
BUY = (
    "After careful negotiation, Arion bought the {item} from {character}.",
    "With measured consideration, Arion purchased the {item} from {character}, examining it closely.",
    "Arion exchanged words and coins with {character} to acquire the {item}.",
    "Seeing value in the offer of {character}, Arion acquired the {item}.",
    "Arion paid {character} a fair price and took home the {item}.",
    "Following some friendly bargaining with {character}, Arion bought the {item}.",
    "Arion counted out the coins, and {character} handed over the {item}.",
    "The deal ended with Arion purchasing the {item} from {character}.",
    "After agreeing on terms with {character}, Arion acquired the {item}.",
    "Unable to resist, Arion bought the {item} that {character} had been praising.",
)
# Selling an item bought in an earlier chapter.
SELL = (
    "With practiced ease, Arion sold the {sold} to {character}.",
    "Arion completed the sale of the {sold} to {character}.",
    "Through skilled negotiation, Arion sold the {sold} to {character} for a good sum.",
    "Arion handed the {sold} to {character} in return for a purse of coins, and both were satisfied.",
    "Arion sold the {sold} to {character} at a fair price.",
    "Before leaving, Arion parted with the {sold}, selling it to {character}.",
)
# Saying goodbye.
FAREWELL = (
    "Arion bid {character} a measured farewell before moving on.",
    "With a final nod, Arion parted ways with {character}.",
    "In quiet understanding, Arion left {character}, their paths diverging.",
    "Arion offered a calm goodbye to {character} before departing.",
    "Arion turned from {character}, ready to move on.",
    "Arion spoke a brief farewell to {character} and left.",
    "Arion and {character} exchanged polite goodbyes.",
    "Arion ended the meeting with {character} with a parting glance.",
    "No more words were needed, and Arion stepped away from {character}.",
    "With a light gesture, Arion thanked {character} once more and departed.",
)
# The last sentence of a chapter.
CLOSE = (
    "Eventually, Arion moved on, carrying new impressions forward.",
    "As Arion prepared to depart, the path ahead remained uncertain but compelling.",
    "The day ended as Arion stepped away, leaving {place} to its own mysteries.",
    "With quiet resolve, Arion carried these moments onward into the unknown.",
    "In time, Arion slipped away, intent on making sense of what had been learned.",
    "As the day waned, Arion held new pieces of a grander puzzle.",
    "Departing, Arion carried fresh insights wrapped in lingering questions.",
    "With each step, Arion felt a subtle shift in perspective.",
    "Nothing would be quite the same after Arion left {place}, thoughts turning inward.",
    "Arion knew that the journey still had far to run.",
)

EVENTS = (
    "a grand festival", "a violent storm", "a secret treaty", "an unexpected betrayal",
    "a tense negotiation", "a mysterious disappearance", "a lavish wedding feast", "an outbreak of fighting",
    "a solemn religious ceremony", "a dangerous ambush", "a sudden market crash", "a surprising alliance",
    "a forbidden ritual", "an urgent council meeting", "a whispered rumor", "an opulent banquet",
    "a chaotic uprising", "a quiet funeral procession", "a midnight duel", "a rare eclipse",
    "a great fire", "a flood along the river", "a horse race", "a royal proclamation", "a public trial",
    "a harvest fair", "a shipwreck near the coast", "a plague scare", "a daring theft", "a poetry contest",
    "an earthquake", "a comet in the night sky", "a dispute between guilds", "a masked ball",
    "the arrival of a foreign envoy", "a strike of the dock workers", "a sudden snowfall",
    "a tournament of archers", "a lost child found", "the opening of a new temple",
)

# Short atmosphere sentences of varied token sizes: the exact last step of fitting (fill.Filler).
FILLERS = (
    " Dust swirled.", " Bells rang.", " Rain fell.", " Night came.", " Gulls cried overhead.",
    " The wind rose.", " A dog barked.", " Smoke drifted past.", " The air smelled of rain.",
    " Somewhere a door slammed.", " Shadows stretched long.", " The crowd thinned.",
    " A cart rattled over the cobblestones.", " Lanterns flickered along the narrow street.",
    " Old stones bore silent witness to countless secrets.", " The distant hum of voices hinted at unseen deals.",
    " A subtle tension lingered, as though fate held its breath.", " Clouds gathered above the rooftops.",
    " In quiet corners, ambitions simmered, waiting for a spark.", " Children chased each other past the well.",
    " The taste of salt hung in the air.", " Somewhere, a lute played a slow and mournful tune.",
    " A cold breeze swept down from the hills and rattled the shutters of every house.",
    " Pigeons scattered from the square.", " The river glittered under a thin moon.",
    " Far off, a rooster crowed.", " The scent of baking bread drifted from an open window.",
    " Silence.", " Dusk.", " All was calm.", " Time passed slowly.", " The hours went by.",
    " An old woman swept the steps of the temple while the sparrows watched her work.",
    " Somewhere beyond the walls, a shepherd was calling his flock home for the night.",
    " Hidden corners of the city promised knowledge or peril.",
)

INTRO = (
    "You are given a story made of numbered chapters. In each chapter the protagonist, Arion, "
    "arrives at a place, meets one character and usually trades: Arion buys an item from that "
    "character and sometimes sells an item bought in an earlier chapter. Every place, character and "
    "item name in the story is unique. Read the story carefully and answer using only what it says."
)

RESPONSE = (
    "First explain briefly, inside <explanation></explanation> tags, how you found the answer in the "
    "story. Then give your final answer inside <answer></answer> tags, exactly in this format:\n"
    "<answer>\n{answer_format}\n</answer>\n{rules}Write nothing after the closing </answer> tag."
)


def prompt_pieces(question: str, answer_format: str, rules: str, plural: bool) -> list[str]:
    """The prompt around the story as six pieces joined at pre-token boundaries:
    head = pieces[0:3] (ends with "<context>\n"), tail = pieces[3:6] (starts with "</context>").
    Pieces 1 and 4 are the question plus a newline; the others depend only on the wording."""
    tag = "questions" if plural else "question"
    intro = ("Below are your questions. They are stated both before and after the story." if plural
             else "Below is your question. It is stated both before and after the story.")
    response = RESPONSE.format(answer_format=answer_format, rules=rules)
    asked = question + "\n"
    return [f"{INTRO}\n\n{intro}\n\n<{tag}>\n", asked, f"</{tag}>\n\n<context>\n",
            f"</context>\n\n<{tag}_repeated>\n", asked, f"</{tag}_repeated>\n\n{response}"]
